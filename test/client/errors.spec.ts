import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import { codeName, LarderError, toLarderError } from "../../client/errors.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

describe("client errors (§14)", () => {
  it("a ConnectError becomes a LarderError with the bare message, the gRPC code name and the ErrorInfo reason", () => {
    const wire = new ConnectError("Item already exists", Code.AlreadyExists, undefined, [
      { desc: ErrorInfoSchema, value: { reason: "ITEM_EXISTS", domain: "larder.dev" } },
    ]);
    // Connect puts the code in front of the message; @ampt/data users compare the bare text.
    expect(wire.message).to.equal("[already_exists] Item already exists");
    const error = toLarderError(wire) as LarderError;
    expect(error).to.be.instanceOf(Error).and.instanceOf(LarderError);
    expect(error).to.include({ name: "LarderError", message: "Item already exists", code: "ALREADY_EXISTS", reason: "ITEM_EXISTS" });
    expect(error.cause).to.equal(wire);
  });

  it("without an ErrorInfo (a proxy, a transport failure) the reason is absent and the code still set", () => {
    const error = toLarderError(new ConnectError("upstream connect error", Code.Unavailable)) as LarderError;
    expect(error).to.include({ code: "UNAVAILABLE", message: "upstream connect error" });
    expect(error.reason).to.equal(undefined);
  });

  it("a LarderError passes through unchanged, and anything that is not a ConnectError too", () => {
    const own = new LarderError("INVALID_ARGUMENT", "Invalid key", "INVALID_KEY");
    expect(toLarderError(own)).to.equal(own);
    const other = new TypeError("x");
    expect(toLarderError(other)).to.equal(other);
  });

  it("code names are gRPC's, for every code Connect knows", () => {
    const names = Object.values(Code)
      .filter((value): value is Code => typeof value === "number")
      .map(codeName);
    expect(names).to.deep.equal([
      "CANCELLED",
      "UNKNOWN",
      "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED",
      "NOT_FOUND",
      "ALREADY_EXISTS",
      "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION",
      "ABORTED",
      "OUT_OF_RANGE",
      "UNIMPLEMENTED",
      "INTERNAL",
      "UNAVAILABLE",
      "DATA_LOSS",
      "UNAUTHENTICATED",
    ]);
  });
});
