import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { MAX_SUBSCRIPTIONS } from "../../core/limits.js";
import { describeContract, expectFailure, type ContractContext } from "./harness.js";
import { subscribe } from "./watching.js";
import { sleep } from "../support/async.js";

/** A Watch that should be refused before its `started` message. */
async function refusedWatch(context: ContractContext, request: { filters?: string[]; subscription?: string }): Promise<unknown> {
  const watch = subscribe(context.client, request);
  await watch.started;
  await watch.close();
  return watch.failure;
}

async function headToken(context: ContractContext): Promise<string> {
  const watch = subscribe(context.client);
  await watch.started;
  await watch.close();
  return watch.token!;
}

/** Acks `count` new subscription names, 50 at a time. */
async function ackMany(context: ContractContext, prefix: string, count: number, token: string): Promise<void> {
  for (let i = 0; i < count; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, (_, j) => context.client.ack({ subscription: `${prefix}${i + j}`, resumeToken: token })),
    );
  }
}

describeContract("contract: bounds on what callers name (issue 22)", (context) => {
  it("a Watch takes at most 100 filters and 16 KiB of them: 200,000 filters are INVALID_FILTER at once", async () => {
    const many = await refusedWatch(context, { filters: Array.from({ length: 200_000 }, () => "*") });
    await expectFailure(Promise.reject(many), Code.InvalidArgument, "INVALID_FILTER", "A Watch takes at most 100 filters, not 200000");
    const long = await refusedWatch(context, { filters: [`created:${"n".repeat(2_000)}:*`] });
    await expectFailure(Promise.reject(long), Code.InvalidArgument, "INVALID_FILTER", "A filter is at most 1024 bytes");
    const heavy = await refusedWatch(context, { filters: Array.from({ length: 20 }, (_, i) => `created:${String(i).padEnd(900, "x")}:*`) });
    await expectFailure(Promise.reject(heavy), Code.InvalidArgument, "INVALID_FILTER", "A Watch's filters are at most 16384 bytes together");
    // 100 filters of ordinary length are fine.
    const fine = subscribe(context.client, { filters: Array.from({ length: 100 }, (_, i) => `created:ns${i}:*`) });
    await fine.started;
    await fine.close();
    expect(fine.failure).to.equal(undefined);
  });

  it("an error quotes at most a short prefix of the caller's input, so it fits a gRPC trailer", async () => {
    const name = "x".repeat(1_000);
    const failure = await expectFailure(Promise.reject(await refusedWatch(context, { filters: [name] })), Code.InvalidArgument, "INVALID_FILTER");
    expect(failure.rawMessage).to.equal(`Invalid event name: ${"x".repeat(64)}…`);
    // Health without a key: a 1 MB service name used to come back as INTERNAL (NGHTTP2_FRAME_SIZE_ERROR).
    const health = createClient(Health, createGrpcTransport({ baseUrl: context.url }));
    let refused: unknown;
    await health.check({ service: "s".repeat(1024 * 1024) }).catch((error: unknown) => (refused = error));
    expect((refused as { code?: Code }).code).to.equal(Code.NotFound);
    expect((refused as Error).message.length).to.be.below(200);
  });

  it("a subscription name is 1 to 256 bytes: longer is INVALID_OPTION on Watch and on Ack, and nothing is stored", async () => {
    const token = await headToken(context);
    const long = "s".repeat((12 * 1024 * 1024) / 16);
    await expectFailure(
      context.client.ack({ subscription: long, resumeToken: token }),
      Code.InvalidArgument,
      "INVALID_OPTION",
      "A subscription name is at most 256 bytes of UTF-8",
    );
    const watch = await refusedWatch(context, { subscription: "é".repeat(129) });
    await expectFailure(Promise.reject(watch), Code.InvalidArgument, "INVALID_OPTION");
  });

  it(`at most ${MAX_SUBSCRIPTIONS} named subscriptions per environment: one more is RESOURCE_EXHAUSTED, a known name still acks`, async function () {
    this.timeout(120_000);
    const token = await headToken(context);
    // The longest name there may be, 256 bytes of UTF-8, is one of them.
    await context.client.ack({ subscription: "é".repeat(128), resumeToken: token });
    await ackMany(context, "full-", MAX_SUBSCRIPTIONS - 1, token);
    await expectFailure(context.client.ack({ subscription: "one-too-many", resumeToken: token }), Code.ResourceExhausted, "TOO_MANY_SUBSCRIPTIONS");
    expect(await refusedWatch(context, { subscription: "one-too-many" })).to.not.equal(undefined);
    await context.client.ack({ subscription: "full-7", resumeToken: token });
  });
});

describeContract(
  "contract: unused subscriptions make room (issue 22)",
  (context) => {
    it("past the bound, a new name replaces the least recently acknowledged one unused for the change retention", async function () {
      this.timeout(120_000);
      const token = await headToken(context);
      await context.client.ack({ subscription: "oldest", resumeToken: token });
      await sleep(50);
      await ackMany(context, "old-", MAX_SUBSCRIPTIONS - 1, token);
      await sleep(2_500);
      await context.client.set({ key: "moved:on", value: { kind: { case: "numberValue", value: 1 } } });
      await context.client.ack({ subscription: "new-a", resumeToken: await headToken(context) });
      // "oldest" gave way: a Watch naming it is a new subscription, starting at the head, past "moved:on".
      const forgotten = subscribe(context.client, { subscription: "oldest" });
      await forgotten.started;
      await forgotten.close();
      expect(forgotten.token).to.not.equal(token);
      // The others keep their positions (and "oldest", new again, took one of their places).
      const kept = subscribe(context.client, { subscription: "old-500" });
      await kept.started;
      await kept.close();
      expect(kept.token).to.equal(token);
    });
  },
  { env: { LARDER_CHANGE_RETENTION_MS: "1000" } },
);
