import { ChatKit, useChatKit } from "@openai/chatkit-react";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { chatKitApi } from "./config";

// A token for the signed-in user: here from the environment (`python -m backend token alice
// --dev`); a real app takes it from its sign-in (Better Auth, the API's /api/auth/token, ...).
const api = chatKitApi({
  baseUrl: import.meta.env.VITE_TASK_API_URL ?? "http://127.0.0.1:8000",
  token: () => import.meta.env.VITE_TASK_API_TOKEN ?? "",
  domainKey: import.meta.env.VITE_CHATKIT_DOMAIN_KEY ?? "domain_pk_localhost_dev",
});

function TaskChat() {
  const { control } = useChatKit({
    api,
    startScreen: {
      greeting: "What should we do with your tasks?",
      prompts: [
        { label: "What's pending?", prompt: "What's pending?" },
        { label: "Add a task", prompt: "Add a task to buy milk tomorrow" },
      ],
    },
    composer: { placeholder: "Ask about your tasks" },
    onError: ({ error }) => console.error("ChatKit:", error.message),
  });
  return <ChatKit control={control} style={{ height: "100vh", width: "100%" }} />;
}

const root = document.getElementById("root");
if (root === null) throw new Error("index.html has no #root");
createRoot(root).render(
  <StrictMode>
    <TaskChat />
  </StrictMode>,
);
