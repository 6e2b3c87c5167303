import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { expect } from "chai";
import { generateKey } from "../../services/access/api-keys.js";
import { findGrpcurl, useServer } from "../support/server.js";
import { sleep } from "../support/async.js";
import { keysFile } from "../support/keys.js";

const run = promisify(execFile);

/**
 * grpcurl against the running server, with no .proto files: everything it
 * knows comes from server reflection. Skipped (not passed) where the team's
 * grpcurl is not installed, as on a user's fresh clone.
 */
const found = findGrpcurl();
const grpcurl = found.path;
/** Mocha's skip() takes no reason, so a missing grpcurl says so in the suite's title. */
const unavailable = grpcurl ? "" : ` (skipped: ${found.why})`;

describe(`e2e: grpcurl -plaintext drives the server through reflection${unavailable}`, function () {
  before(function () {
    if (!grpcurl) this.skip();
  });
  const running = useServer();
  const target = () => `127.0.0.1:${running.server.port}`;
  const call = async (...args: string[]) => (await run(grpcurl!, ["-plaintext", ...args], { timeout: 15_000 })).stdout;

  it("list shows every service, both reflection versions and health", async () => {
    const services = (await call(target(), "list")).trim().split("\n");
    expect(services).to.deep.equal([
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "larder.admin.v1.AdminService",
      "larder.data.v1.DataService",
    ]);
  });

  it("describe shows the data service and its messages with their comments, well-known types included", async () => {
    const service = await call(target(), "describe", "larder.data.v1.DataService");
    for (const method of ["Get", "BatchGet", "Query", "Count", "History", "Set", "BatchSet", "Add", "Remove", "Scan", "Seed", "Watch", "Ack"]) {
      expect(service).to.contain(`rpc ${method} (`);
    }
    expect(service).to.contain("returns ( stream .larder.data.v1.WatchResponse )");
    // The .proto comments come through reflection too.
    expect(service).to.contain("// DataService reads and writes the items of one environment");
    expect(service).to.contain("// Ack stores the position a named subscription has processed up to.");
    expect(await call(target(), "describe", "larder.data.v1.QueryRequest")).to.contain("// Page size from 1 to 1000");
    expect(await call(target(), "describe", "larder.data.v1.GetRequest")).to.contain("OUT_OF_RANGE with reason HISTORY_EXPIRED");
    expect(service).to.contain("// History returns the changes of one exact key");
    const item = await call(target(), "describe", "larder.data.v1.Item");
    expect(item).to.contain(".google.protobuf.Value value");
    expect(item).to.contain(".google.protobuf.Timestamp created");
  });

  it("unary calls with -d: Set, Get, Query with JSON values", async () => {
    const set = JSON.parse(
      await call(
        "-d",
        '{"key":"users:jane","value":{"name":"Jane","age":41},"label1":{"set":"city:oslo"}}',
        target(),
        "larder.data.v1.DataService/Set",
      ),
    );
    expect(set.item.value).to.deep.equal({ name: "Jane", age: 41 });
    expect(set.item.label1).to.equal("city:oslo");
    const got = JSON.parse(await call("-d", '{"key":"users:jane"}', target(), "larder.data.v1.DataService/Get"));
    expect(got.item.key).to.equal("users:jane");
    const page = JSON.parse(await call("-d", '{"expression":"city:*","label":"label1"}', target(), "larder.data.v1.DataService/Query"));
    expect(page.items.map((item: { key: string }) => item.key)).to.deep.equal(["users:jane"]);
  });

  it("an error shows its code, message and the decoded ErrorInfo", async () => {
    let failure: { stderr?: string; stdout?: string; code?: number } = {};
    try {
      await call("-d", '{"key":"users:"}', target(), "larder.data.v1.DataService/Get");
    } catch (error) {
      failure = error as typeof failure;
    }
    const text = `${failure.stdout ?? ""}${failure.stderr ?? ""}`;
    expect(text).to.contain("Code: InvalidArgument");
    expect(text).to.contain("Message: Invalid key");
    expect(text).to.contain('"reason":"INVALID_KEY"');
  });

  it("a server-streaming Watch delivers the started message and then events", async () => {
    const watch = spawn(grpcurl!, [
      "-plaintext",
      "-max-time",
      "5",
      "-d",
      '{"filters":["created:w:*"]}',
      target(),
      "larder.data.v1.DataService/Watch",
    ]);
    let output = "";
    watch.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 5_000;
    while (!output.includes("started") && Date.now() < deadline) await sleep(20);
    await call("-d", '{"key":"w:1","value":1}', target(), "larder.data.v1.DataService/Set");
    while (!output.includes('"w:1"') && Date.now() < deadline) await sleep(20);
    watch.kill();
    expect(output).to.contain('"resumeToken"');
    expect(output).to.match(/"name": "created"/);
    expect(output).to.contain('"key": "w:1"');
  });

  it("health: Check answers SERVING for the server and for the data service", async () => {
    expect(JSON.parse(await call(target(), "grpc.health.v1.Health/Check")).status).to.equal("SERVING");
    const data = await call("-d", '{"service":"larder.data.v1.DataService"}', target(), "grpc.health.v1.Health/Check");
    expect(JSON.parse(data).status).to.equal("SERVING");
  });
});

describe(`e2e: grpcurl with API keys (the README's example)${unavailable}`, function () {
  before(function () {
    if (!grpcurl) this.skip();
  });
  const key = generateKey();
  const running = useServer({ env: { LARDER_KEYS_FILE: keysFile([{ id: "ci", key, environment: "prod", role: "write" }]) } });
  const target = () => `127.0.0.1:${running.server.port}`;
  const call = async (...args: string[]) => (await run(grpcurl!, ["-plaintext", ...args], { timeout: 15_000 })).stdout;
  const failureText = async (...args: string[]) => {
    try {
      await call(...args);
    } catch (error) {
      const { stdout = "", stderr = "" } = error as { stdout?: string; stderr?: string };
      return stdout + stderr;
    }
    throw new Error("grpcurl should have failed");
  };

  it("list and describe work without a key; data calls need -H 'authorization: Bearer <key>'", async () => {
    expect(await call(target(), "list")).to.contain("larder.data.v1.DataService");
    expect(await call(target(), "describe", "larder.data.v1.DataService")).to.contain("rpc Get (");
    expect(await failureText("-d", '{"key":"a"}', target(), "larder.data.v1.DataService/Get")).to.contain("Code: Unauthenticated");
    expect(
      await failureText("-H", `authorization: Bearer ${generateKey()}`, "-d", '{"key":"a"}', target(), "larder.data.v1.DataService/Get"),
    ).to.contain("Code: Unauthenticated");
    const auth = ["-H", `authorization: Bearer ${key}`];
    await call(...auth, "-d", '{"key":"a","value":"keyed"}', target(), "larder.data.v1.DataService/Set");
    expect(JSON.parse(await call(...auth, "-d", '{"key":"a"}', target(), "larder.data.v1.DataService/Get")).item.value).to.equal("keyed");
    expect(await failureText(...auth, target(), "larder.admin.v1.AdminService/ListEnvironments")).to.contain("Code: PermissionDenied");
  });
});
