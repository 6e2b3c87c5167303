import { expect } from "chai";
import { readFileSync } from "node:fs";
import { DomainError } from "../../core/errors.js";
import { anyFilterMatches, parseEventFilter } from "../../core/filters.js";
import type { ChangeName } from "../../core/item.js";
import { parseKey } from "../../core/keys.js";

const vectors = JSON.parse(readFileSync(new URL("../fixtures/vectors.json", import.meta.url), "utf8")) as {
  filters: [string | string[], ChangeName, string, boolean][];
};

describe("event filters", () => {
  for (const [specifier, name, key, expected] of vectors.filters) {
    it(`EV2/EV3: ${JSON.stringify(specifier)} ${expected ? "receives" : "does not receive"} ${name} of ${key}`, () => {
      const filters = (Array.isArray(specifier) ? specifier : [specifier]).map(parseEventFilter);
      expect(anyFilterMatches(filters, name, parseKey(key))).to.equal(expected);
    });
  }

  it("EV1: an unknown event name is refused at registration", () => {
    try {
      parseEventFilter("changed:users:*");
      expect.fail("should throw");
    } catch (error) {
      expect(error).to.be.instanceOf(DomainError);
      expect((error as DomainError).message).to.equal("Invalid event name: changed");
    }
  });

  it("EV10: filters are matched as written, not trimmed", () => {
    const filters = [parseEventFilter("created: a")];
    expect(anyFilterMatches(filters, "created", parseKey("a"))).to.equal(false);
  });
});
