import { DomainError, failedPrecondition, quote } from "./errors.js";

/**
 * Why a write is refused once the stored item is known (S5's order: exists,
 * created, version, then the value): the same refusals whichever engine
 * applies the plan.
 */

/** E1: what a write with `exists: false` gets when a live item is there. */
export function itemExists(): DomainError {
  return new DomainError("ALREADY_EXISTS", "ITEM_EXISTS", "Item already exists");
}

/** E1: what a write with `exists: true` gets when there is no live item. */
export function itemNotFound(): DomainError {
  return new DomainError("NOT_FOUND", "ITEM_NOT_FOUND", "Item does not exist");
}

/** C2: the stored created does not match the write's. */
export function createdMismatch(): DomainError {
  return failedPrecondition("CREATED_MISMATCH", "The 'created' date integrity check failed. The dates must match.");
}

/** The live item's version does not match a write's ifVersion (0 stands for "no live item"). */
export function versionMismatch(expected: number, actual: number): DomainError {
  return failedPrecondition(
    "VERSION_MISMATCH",
    actual === 0
      ? `The version check failed: expected version ${expected}, but there is no live item`
      : expected === 0
        ? `The version check failed: expected no item, but the item exists at version ${actual}`
        : `The version check failed: expected version ${expected}, but the item is at version ${actual}`,
  );
}

/** V5: a single value (or a whole-value counter) written over a stored object. */
export function notASimpleValue(): DomainError {
  return failedPrecondition("NOT_A_SIMPLE_VALUE", "Cannot convert an existing object to a simple value.");
}

/** A4: a counter onto something that is not a number. */
export function notANumber(attribute: string): DomainError {
  return failedPrecondition("NOT_A_NUMBER", `'${quote(attribute)}' is not a number`);
}

/**
 * A6: a counter adds in doubles, and a sum past Number.MAX_VALUE is Infinity,
 * which JSON cannot hold (it would be stored as null, or fail every read).
 * OUT_OF_RANGE rather than FAILED_PRECONDITION: the same call succeeds again
 * once the stored number is smaller.
 */
export function numberOverflow(attribute: string, amount: number): DomainError {
  return new DomainError("OUT_OF_RANGE", "NUMBER_OVERFLOW", `Adding ${amount} to '${quote(attribute)}' overflows the largest number`);
}
