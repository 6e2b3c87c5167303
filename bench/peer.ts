import { spawn } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "./server-process.js";

/**
 * The benchmark's peer: the published `@ampt/data` client over dynalite, a
 * DynamoDB implementation, in a process of its own on loopback, with the
 * table that client expects (read from its sources: partition key `pk`, sort
 * key `sk`, and indexes `gsi1`..`gsi5` on `pk1`/`sk1`..`pk5`/`sk5`).
 */
export const PEER_TABLE = "larder-bench-peer";

export interface PeerServer {
  readonly endpoint: string;
  readonly pid: number;
  stop(): Promise<void>;
}

export async function startPeerServer(): Promise<PeerServer> {
  const child = spawn(process.execPath, [join(ROOT, "bench/dynalite-process.cjs")], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const endpoint = await new Promise<string>((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`dynalite did not start: ${output}`)), 30_000);
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once("exit", (code) => reject(new Error(`dynalite exited (${code}): ${output}`)));
  });
  const peer: PeerServer = {
    endpoint,
    pid: child.pid!,
    async stop() {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(killer);
    },
  };
  try {
    await createPeerTable(endpoint);
  } catch (error) {
    await peer.stop();
    throw error;
  }
  return peer;
}

/** DynamoDB's JSON protocol; dynalite wants the shape of a signed request but checks no signature. */
async function dynamo(endpoint: string, target: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(endpoint, {
    method: "POST",
    headers: {
      "content-type": "application/x-amz-json-1.0",
      "x-amz-target": `DynamoDB_20120810.${target}`,
      "x-amz-date": "20260101T000000Z",
      authorization: "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
    },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`dynalite ${target}: ${response.status} ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

async function createPeerTable(endpoint: string): Promise<void> {
  const throughput = { ReadCapacityUnits: 1000, WriteCapacityUnits: 1000 };
  const attributes = [
    { AttributeName: "pk", AttributeType: "S" },
    { AttributeName: "sk", AttributeType: "S" },
  ];
  const indexes = [];
  for (let label = 1; label <= 5; label++) {
    attributes.push({ AttributeName: `pk${label}`, AttributeType: "S" }, { AttributeName: `sk${label}`, AttributeType: "S" });
    indexes.push({
      IndexName: `gsi${label}`,
      KeySchema: [
        { AttributeName: `pk${label}`, KeyType: "HASH" },
        { AttributeName: `sk${label}`, KeyType: "RANGE" },
      ],
      Projection: { ProjectionType: "ALL" },
      ProvisionedThroughput: throughput,
    });
  }
  await dynamo(endpoint, "CreateTable", {
    TableName: PEER_TABLE,
    AttributeDefinitions: attributes,
    KeySchema: [
      { AttributeName: "pk", KeyType: "HASH" },
      { AttributeName: "sk", KeyType: "RANGE" },
    ],
    GlobalSecondaryIndexes: indexes,
    ProvisionedThroughput: throughput,
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { Table } = (await dynamo(endpoint, "DescribeTable", { TableName: PEER_TABLE })) as { Table: { TableStatus: string } };
    if (Table.TableStatus === "ACTIVE") return;
    if (Date.now() > deadline) throw new Error(`dynalite table still ${Table.TableStatus}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * `@ampt/data`'s Data over the endpoint. Its bundled DynamoDB client reads no
 * endpoint from the environment, so one is built with the same (bundled) class
 * the package would use, pointed at dynalite with dummy credentials.
 */
export async function peerData(endpoint: string): Promise<PeerData> {
  const { Data } = (await import("@ampt/data")) as unknown as { Data: PeerDataClass };
  const withDefaultClient = new Data({ table: PEER_TABLE });
  const DynamoDBClient = (withDefaultClient.client as { constructor: new (config: unknown) => unknown }).constructor;
  const client = new DynamoDBClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "bench", secretAccessKey: "bench" },
    maxAttempts: 1,
  });
  return new Data({ table: PEER_TABLE, client });
}

interface PeerDataClass {
  new (params: { table: string; client?: unknown }): PeerData;
}

export interface PeerData {
  readonly client: unknown;
  get(key: string | string[], options?: unknown): Promise<unknown>;
  set(key: string, value: unknown, options?: unknown): Promise<unknown>;
  seed(items: { key: string; value: unknown }[], options?: unknown): Promise<unknown>;
}
