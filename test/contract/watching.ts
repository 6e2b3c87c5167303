import type { Client } from "@connectrpc/connect";
import { expect } from "chai";
import type { ChangeEvent, DataService } from "../../gen/larder/data/v1/data_pb.js";
import { sleep } from "../support/async.js";

/** A Watch stream read in the background, with its events collected in order. */
export function subscribe(client: Client<typeof DataService>, request: { filters?: string[]; resumeToken?: string; subscription?: string } = {}) {
  const abort = new AbortController();
  const events: ChangeEvent[] = [];
  let startedToken: string | undefined;
  let failure: unknown;
  let markStarted!: () => void;
  const started = new Promise<void>((resolve) => (markStarted = resolve));
  const done = (async () => {
    try {
      for await (const message of client.watch(request, { signal: abort.signal })) {
        if (message.kind.case === "started") {
          startedToken = message.kind.value.resumeToken;
          markStarted();
        } else if (message.kind.case === "event") {
          events.push(message.kind.value);
        }
      }
    } catch (error) {
      if (!abort.signal.aborted) failure = error;
      markStarted();
    }
  })();
  return {
    events,
    started,
    get token() {
      return startedToken;
    },
    get failure() {
      return failure;
    },
    async until(count: number, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (events.length < count && Date.now() < deadline && failure === undefined) {
        await sleep(10);
      }
      if (failure) throw failure;
      expect(events.length, "events received").to.be.at.least(count);
      return events;
    },
    async close() {
      abort.abort();
      await done;
    },
  };
}
