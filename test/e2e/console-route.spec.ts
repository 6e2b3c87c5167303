import http2 from "node:http2";
import { readFileSync } from "node:fs";
import { expect } from "chai";
import { CONSOLE_CSP } from "../../services/console-route.js";
import { consoleBuilt } from "../support/console.js";
import { startServer, useServer, type RunningServer } from "../support/server.js";
import { selfSignedCertificate } from "../support/tls.js";

/** The static /console route: content types, the CSP and other headers, caching, 404s, methods. */
describe("e2e: the console's files at /console", function () {
  this.timeout(60_000);
  before(async function () {
    this.timeout(120_000);
    await consoleBuilt();
  });
  const running = useServer();

  async function assets(): Promise<{ script: string; style: string }> {
    const url = running.url;
    const page = await (await fetch(`${url}/console`)).text();
    return {
      script: /<script defer src="(\/console\/console-[A-Z0-9]{8}\.js)"><\/script>/.exec(page)![1],
      style: /href="(\/console\/console-[A-Z0-9]{8}\.css)"/.exec(page)![1],
    };
  }

  it("serves the page at /console and /console/ as HTML with the strict CSP and the other security headers", async () => {
    const url = running.url;
    for (const path of ["/console", "/console/", "/console?x=1"]) {
      const response = await fetch(`${url}${path}`);
      expect(response.status, path).to.equal(200);
      expect(response.headers.get("content-type")).to.equal("text/html; charset=utf-8");
      const csp = response.headers.get("content-security-policy")!;
      expect(csp).to.equal(CONSOLE_CSP);
      for (const directive of [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
        "require-trusted-types-for 'script'",
      ]) {
        expect(csp.split("; ")).to.include(directive);
      }
      expect(csp).not.to.contain("unsafe");
      expect(response.headers.get("x-content-type-options")).to.equal("nosniff");
      expect(response.headers.get("x-frame-options")).to.equal("DENY");
      expect(response.headers.get("referrer-policy")).to.equal("no-referrer");
      expect(response.headers.get("cache-control")).to.equal("no-cache");
      expect(response.headers.get("etag")).to.match(/^"[A-Za-z0-9_-]+"$/);
    }
  });

  it("the page has no inline script or style: every script and stylesheet is a file of the console", async () => {
    const url = running.url;
    const page = await (await fetch(`${url}/console`)).text();
    const scripts = [...page.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts).to.have.length(1);
    for (const [, attributes, body] of scripts) {
      expect(attributes).to.match(/src="\/console\//);
      expect(body.trim()).to.equal("");
    }
    expect(page).not.to.match(/<style\b/);
    expect(page).not.to.match(/\sstyle=/);
    expect(page).not.to.match(/\son[a-z]+=/);
    expect(page).not.to.match(/https?:\/\//);
  });

  it("assets: right content types, kept for good (names carry their hash), with the same headers", async () => {
    const url = running.url;
    const { script, style } = await assets();
    const js = await fetch(`${url}${script}`);
    expect(js.status).to.equal(200);
    expect(js.headers.get("content-type")).to.equal("text/javascript; charset=utf-8");
    expect(js.headers.get("cache-control")).to.equal("public, max-age=31536000, immutable");
    expect(js.headers.get("content-security-policy")).to.equal(CONSOLE_CSP);
    const body = await js.text();
    expect(body).not.to.contain("dangerouslySetInnerHTML=");
    const css = await fetch(`${url}${style}`);
    expect(css.headers.get("content-type")).to.equal("text/css; charset=utf-8");
    expect(css.headers.get("cache-control")).to.equal("public, max-age=31536000, immutable");
    const icon = await fetch(`${url}/console/favicon.svg`);
    expect(icon.headers.get("content-type")).to.equal("image/svg+xml");
    expect(icon.headers.get("cache-control")).to.equal("no-cache");
  });

  it("revalidation: If-None-Match with the ETag gets 304 and no body; HEAD gets the headers only", async () => {
    const url = running.url;
    const first = await fetch(`${url}/console`);
    const etag = first.headers.get("etag")!;
    const again = await fetch(`${url}/console`, { headers: { "if-none-match": etag } });
    expect(again.status).to.equal(304);
    expect(await again.text()).to.equal("");
    const head = await fetch(`${url}/console`, { method: "HEAD" });
    expect(head.status).to.equal(200);
    expect(Number(head.headers.get("content-length"))).to.equal((await first.text()).length);
    expect(await head.text()).to.equal("");
  });

  it("404 for anything that is not a file of the console, never a file outside it; 405 for other methods", async () => {
    const url = running.url;
    for (const path of [
      "/console/nope.js",
      "/console/console.js",
      "/console/a/b.js",
      "/console/..%2Fpackage.json",
      "/console/.env",
      "/console/index.html/x",
      "/consolex",
    ]) {
      const response = await fetch(`${url}${path}`);
      if (path === "/consolex") {
        // Not the console's path: the RPC router's answer, not a file.
        expect(response.status, path).to.not.equal(200);
        continue;
      }
      expect(response.status, path).to.equal(404);
      expect(response.headers.get("cache-control"), path).to.equal("no-store");
      expect(response.headers.get("content-security-policy"), path).to.equal(CONSOLE_CSP);
      expect(await response.text(), path).not.to.contain("larder");
    }
    // fetch normalizes dot segments itself; a raw request path keeps them.
    const raw = await new Promise<number>((resolve, reject) => {
      const request = http2.connect(url);
      request.on("error", reject);
      const stream = request.request({ ":path": "/console/../package.json" });
      stream.on("response", (headers) => {
        resolve(headers[":status"] as number);
        request.close();
      });
      stream.end();
    });
    expect(raw).to.equal(404);
    for (const method of ["POST", "PUT", "DELETE"]) {
      const response = await fetch(`${url}/console`, { method });
      expect(response.status, method).to.equal(405);
      expect(response.headers.get("allow")).to.equal("GET, HEAD");
    }
  });

  it("the RPCs on the same port are untouched", async () => {
    const url = running.url;
    const response = await fetch(`${url}/larder.data.v1.DataService/Ping`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(response.status).to.equal(200);
    expect(response.headers.get("content-security-policy")).to.equal(null);
  });
});

describe("e2e: the console over TLS, on the service's port", function () {
  this.timeout(60_000);
  let server: RunningServer | undefined;
  let ca: Buffer | undefined;

  before(async function () {
    this.timeout(120_000);
    const files = selfSignedCertificate();
    if (!files) this.skip(); // no openssl here to make a certificate: reported as pending
    const { cert, key } = files;
    ca = readFileSync(cert);
    await consoleBuilt();
    server = await startServer({ env: { LARDER_TLS_CERT: cert, LARDER_TLS_KEY: key } });
  });
  after(async () => {
    await server?.stop();
  });

  it("serves the page over HTTPS (h2, as browsers speak it) with the CSP", async () => {
    const session = http2.connect(`https://127.0.0.1:${server!.port}`, { ca });
    try {
      const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        session.on("error", reject);
        const stream = session.request({ ":path": "/console" });
        stream.on("response", resolve);
        stream.on("error", reject);
        stream.resume();
        stream.end();
      });
      expect(headers[":status"]).to.equal(200);
      expect(headers["content-type"]).to.equal("text/html; charset=utf-8");
      expect(headers["content-security-policy"]).to.equal(CONSOLE_CSP);
    } finally {
      session.close();
    }
  });
});
