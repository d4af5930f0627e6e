import type { CustomApiConfig } from "@openai/chatkit-react";

/** Where the Task API runs, and how this page signs in to it. */
export type TaskApi = {
  /** The API's origin, e.g. "http://127.0.0.1:8000" (its CORS_ORIGINS must list this page's). */
  baseUrl: string;
  /** Returns a bearer token for the signed-in user (the same tokens as every Task API route). */
  token: () => string | Promise<string>;
  /**
   * ChatKit's domain key. ChatKit requires one even with your own backend: on localhost any
   * value works; in production register the page's domain with OpenAI
   * (platform.openai.com, ChatKit's domain allowlist) and use the key it gives.
   */
  domainKey: string;
};

/**
 * ChatKit's `api` option for the Task API: its own endpoint (`POST /api/chatkit`) and a
 * `fetch` that adds `Authorization: Bearer ...` to every request ChatKit sends.
 */
export function chatKitApi(api: TaskApi): CustomApiConfig {
  const authorized: typeof fetch = async (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set("Authorization", `Bearer ${await api.token()}`);
    return fetch(input, { ...init, headers });
  };
  return {
    url: `${api.baseUrl.replace(/\/$/, "")}/api/chatkit`,
    domainKey: api.domainKey,
    fetch: authorized,
  };
}
