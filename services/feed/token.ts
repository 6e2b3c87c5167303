import { DomainError, invalidArgument } from "../../core/errors.js";

/**
 * A resume token, the same envelope on every engine: `2.<history>.<position>`.
 * `history` names the change history the position belongs to (an
 * environment dropped and made again is another history, whose positions
 * start over); `position` is the engine's, opaque here (a sequence number, or
 * MongoDB's resume token in base64url). The leading `2` is the envelope's
 * version.
 */
export interface FeedToken {
  readonly history: string;
  readonly position: string;
}

const TOKEN = /^2\.([0-9A-Za-z]+)\.([0-9A-Za-z_-]+)$/;

export function encodeToken(history: string, position: string): string {
  return `2.${history}.${position}`;
}

/** Malformed: INVALID_ARGUMENT (INVALID_OPTION), before anything is read. */
export function decodeToken(token: string): FeedToken {
  const match = TOKEN.exec(token);
  if (!match) throw invalidToken();
  return { history: match[1], position: match[2] };
}

export function invalidToken(): DomainError {
  return invalidArgument("INVALID_OPTION", "Invalid resume token");
}

/** A position older than the retained change history, or of a dropped one: never silently skipped. */
export function tokenExpired(why = "The resume token is older than the retained change history"): DomainError {
  return new DomainError("OUT_OF_RANGE", "TOKEN_EXPIRED", `${why}; start a new subscription`);
}
