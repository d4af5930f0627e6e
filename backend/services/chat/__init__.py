"""Chat's conversations (REST and ChatKit)."""
