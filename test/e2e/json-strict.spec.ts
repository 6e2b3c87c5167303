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

  type ErrorBody = { code?: string; message?: string; details?: { type: string; debug?: { reason?: string; domain?: string } }[] };
  async function post(method: string, body: string): Promise<{ status: number; body: ErrorBody }> {
    const response = await fetch(`${running.url}/larder.data.v1.DataService/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    return { status: response.status, body: (await response.json()) as ErrorBody };
  }

  it('a typo (`"exist": false`) is INVALID_ARGUMENT naming the field, and the item is not overwritten', async () => {
    const client = createClient(DataService, createGrpcTransport({ baseUrl: running.url }));
    await client.set({ key: "users:jane", value: { kind: { case: "stringValue", value: "original" } } });
    const refused = await post("Set", '{"key":"users:jane","value":{"name":"OVERWRITTEN"},"exist":false}');
    expect(refused.status).to.equal(400);
    expect(refused.body.code).to.equal("invalid_argument");
    expect(refused.body.message).to.equal(
      'Unknown field "exist" in larder.data.v1.SetRequest; its fields: ' + refused.body.message!.split("its fields: ")[1],
    );
    expect(refused.body.message).to.contain("exists");
    expect(refused.body.details?.map((detail) => detail.debug)).to.deep.equal([{ reason: "INVALID_REQUEST", domain: "larder.dev" }]);
    const got = await client.get({ key: "users:jane" });
    expect(got.item?.value?.kind).to.deep.equal({ case: "stringValue", value: "original" });
  });

  it("an unknown field on a read is refused too", async () => {
    const refused = await post("Get", '{"key":"users:jane","bogus":2}');
    expect(refused.status).to.equal(400);
    expect(refused.body.message).to.contain('Unknown field "bogus"');
    expect(refused.body.details?.[0]?.debug?.reason).to.equal("INVALID_REQUEST");
  });

  it("a value of the wrong type is INVALID_ARGUMENT with the reason too", async () => {
    const refused = await post("Query", '{"expression":"users:*","limit":"many"}');
    expect([refused.status, refused.body.code]).to.deep.equal([400, "invalid_argument"]);
    expect(refused.body.message).to.contain("limit");
    expect(refused.body.details?.[0]?.debug?.reason).to.equal("INVALID_REQUEST");
  });

  it("known fields in their JSON and proto spellings are accepted", async () => {
    const ok = await post("Set", '{"key":"users:ok","value":1,"exists":false}');
    expect(ok.status).to.equal(200);
    const again = await post("Query", '{"expression":"users:*","limit":1}');
    expect(again.status).to.equal(200);
  });
});
