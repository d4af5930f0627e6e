// Compiled by `tsc --noEmit` in the suite (tests/examples/test_chatkit.py): each line after
// an expect-error directive must fail to compile, so the claims of README.md stay true of the
// packages as installed.
import type { CustomApiConfig } from "@openai/chatkit-react";

import { chatKitApi } from "./config";

// ChatKit's own backend config requires a domainKey, even for a custom backend.
// @ts-expect-error domainKey is required
export const withoutKey: CustomApiConfig = { url: "/api/chatkit" };

// Ours needs the three: the API, a token, the domain key.
// @ts-expect-error token is required
export const withoutToken = chatKitApi({ baseUrl: "http://127.0.0.1:8000", domainKey: "k" });

export const fine: CustomApiConfig = chatKitApi({
  baseUrl: "http://127.0.0.1:8000/",
  token: () => "a-token",
  domainKey: "domain_pk_localhost_dev",
});
