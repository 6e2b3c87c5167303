import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A self-signed certificate for 127.0.0.1 (files in a new temporary
 * directory), made with openssl where it is installed: undefined where it is
 * not, so the spec can skip and say why.
 */
export function selfSignedCertificate(): { cert: string; key: string } | undefined {
  const directory = mkdtempSync(join(tmpdir(), "larder-tls-"));
  const cert = join(directory, "cert.pem");
  const key = join(directory, "key.pem");
  try {
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1"].concat([
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
      ]),
      { stdio: "ignore" },
    );
    return { cert, key };
  } catch {
    return undefined;
  }
}
