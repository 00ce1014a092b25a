/**
 * Closing a Checkout Session before its order's hold on a node is released, so nobody
 * can pay for room given to someone else. Stripe calls only: the caller applies the
 * answer afterwards, in its own transaction guarded by the order's state (never a
 * network call under a lock).
 *
 * @module
 */
import { Stripe } from "./client.ts";

/** How a session ended, as Stripe says after the close. */
export type ClosedSession =
  /** Stripe's answer: `expired` (closed, now or before), `complete` (paid) or other. */
  | { session: Stripe.Checkout.Session; closedNow: boolean }
  /** Stripe does not know the session (other keys, a deleted account): 404. */
  | { unknown: true };

/**
 * Makes sure a session can no longer be paid: an `open` one is expired in Stripe; a
 * refusal because it was completed meanwhile is read back (then it was paid, and its
 * order keeps its room). Throws Stripe's error for anything else.
 */
export async function closeCheckoutSession(
  stripe: Stripe,
  sessionId: string,
  options: Stripe.RequestOptions = {},
): Promise<ClosedSession> {
  let session: Stripe.Checkout.Session;
  try {
    session = await stripe.checkout.sessions.retrieve(sessionId, {}, options);
  } catch (error) {
    if (
      error instanceof Stripe.errors.StripeError && error.statusCode === 404
    ) return { unknown: true };
    throw error;
  }
  if (session.status !== "open") return { session, closedNow: false };
  try {
    const closed = await stripe.checkout.sessions.expire(
      sessionId,
      {},
      options,
    );
    return { session: closed, closedNow: true };
  } catch (error) {
    // Only an open session expires: it was completed between the two calls.
    if (!(error instanceof Stripe.errors.StripeInvalidRequestError)) {
      throw error;
    }
    const again = await stripe.checkout.sessions.retrieve(
      sessionId,
      {},
      options,
    );
    if (again.status === "open") throw error;
    return { session: again, closedNow: false };
  }
}
