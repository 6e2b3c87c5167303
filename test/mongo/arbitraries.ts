import fc from "fast-check";
import type { JsonValue } from "../../core/json.js";

/** Attribute names MongoDB would otherwise interpret or JSON must escape (V2), among any strings. */
export const attributeNames = fc.oneof(
  fc.constantFrom("a.b", "$x", "", "__proto__", "constructor", "😀", 'q"uote', "back\\slash", "ctl\u0001"),
  fc.string(),
);

/** Any JSON value Larder stores, nested a little. */
export const jsonValues = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.string(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(attributeNames, tie("value"), { maxKeys: 4 }),
  ),
})).value as fc.Arbitrary<JsonValue>;
