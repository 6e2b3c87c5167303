import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { useServer } from "../support/server.js";

/**
 * Connect JSON is what curl and hand-written clients send: a misspelt field
 * must not be dropped silently (the call would run without it: `"exist": false`
 * meant as `"exists": false` overwrote the item).
 */
describe("e2e: Connect JSON refuses unknown fields", () => {
  const running = useServer();

  async function post(method: string, body: string): Promise<{ status: number; body: { code?: string; message?: string } }> {
    const response = await fetch(`${running.url}/larder.data.v1.DataService/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    return { status: response.status, body: (await response.json()) as { code?: string; message?: string } };
  }

  it('a typo (`"exist": false`) is INVALID_ARGUMENT naming the field, and the item is not overwritten', async () => {
    const client = createClient(DataService, createGrpcTransport({ baseUrl: running.url }));
    await client.set({ key: "users:jane", value: { kind: { case: "stringValue", value: "original" } } });
    const refused = await post("Set", '{"key":"users:jane","value":{"name":"OVERWRITTEN"},"exist":false}');
    expect(refused.status).to.equal(400);
    expect(refused.body.code).to.equal("invalid_argument");
    expect(refused.body.message).to.contain('"exist"');
    const got = await client.get({ key: "users:jane" });
    expect(got.item?.value?.kind).to.deep.equal({ case: "stringValue", value: "original" });
  });

  it("an unknown field on a read is refused too", async () => {
    const refused = await post("Get", '{"key":"users:jane","bogus":2}');
    expect(refused.status).to.equal(400);
    expect(refused.body.message).to.contain('"bogus"');
  });

  it("known fields in their JSON and proto spellings are accepted", async () => {
    const ok = await post("Set", '{"key":"users:ok","value":1,"exists":false}');
    expect(ok.status).to.equal(200);
    const again = await post("Query", '{"expression":"users:*","limit":1}');
    expect(again.status).to.equal(200);
  });
});
