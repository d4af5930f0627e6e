interface ImportMetaEnv {
  readonly VITE_TASK_API_URL?: string;
  readonly VITE_TASK_API_TOKEN?: string;
  readonly VITE_CHATKIT_DOMAIN_KEY?: string;
}

interface ImportMeta {
  readonly env: ImportMetaEnv;
}
