import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createBrowserTransport } from "../client/browser.js";
import { AdminService } from "../gen/larder/admin/v1/admin_pb.js";
import { DataService } from "../gen/larder/data/v1/data_pb.js";

/**
 * The console's connection: the generated clients over the project's browser
 * transport, on the origin that served the console, with the API key the user
 * signed in with. The key lives in sessionStorage only (gone when the tab
 * closes), travels only in the authorization header, and is never put in a
 * URL or written to the console log.
 */
export interface Session {
  readonly data: Client<typeof DataService>;
  readonly admin: Client<typeof AdminService>;
  /** Whether the key may call DataService (an operator key manages environments only). */
  readonly readsData: boolean;
  /** Whether the server wanted a key (false: loopback without a keys file). */
  readonly signedIn: boolean;
  /** Whether the key may call AdminService (environments); only asked, never assumed. */
  readonly managesEnvironments: boolean;
}

const KEY_STORAGE = "larder.console.apiKey";

export function storedKey(): string | undefined {
  try {
    return sessionStorage.getItem(KEY_STORAGE) ?? undefined;
  } catch {
    return undefined;
  }
}

export function forgetKey(): void {
  try {
    sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage disabled: nothing was kept.
  }
}

export type Opened = { readonly session: Session } | { readonly needsKey: true; readonly refused?: string };

/**
 * Ping says whether the server wants a key: it answers anyone on a server
 * without keys, and UNAUTHENTICATED on one with keys when the key is missing
 * or unknown. A key that works is kept for this tab.
 */
export async function openSession(apiKey: string | undefined): Promise<Opened> {
  const transport = createBrowserTransport({ url: location.origin, apiKey });
  const data = createClient(DataService, transport);
  const admin = createClient(AdminService, transport);
  let readsData = true;
  try {
    await data.ping({});
  } catch (error) {
    const failure = ConnectError.from(error);
    // PERMISSION_DENIED: a known key without data calls (an operator key, which manages environments only).
    if (failure.code !== Code.PermissionDenied) {
      if (failure.code !== Code.Unauthenticated) throw error;
      if (apiKey !== undefined) forgetKey();
      return { needsKey: true, refused: apiKey === undefined ? undefined : failure.rawMessage };
    }
    readsData = false;
  }
  if (apiKey !== undefined) {
    try {
      sessionStorage.setItem(KEY_STORAGE, apiKey);
    } catch {
      // Storage disabled: the key lasts until the page reloads.
    }
  }
  let managesEnvironments = true;
  try {
    await admin.listEnvironments({});
  } catch (error) {
    // Only a refusal of the role hides environments; any other failure is the view's to show.
    managesEnvironments = ConnectError.from(error).code !== Code.PermissionDenied;
  }
  return { session: { data, admin, readsData, signedIn: apiKey !== undefined, managesEnvironments } };
}
