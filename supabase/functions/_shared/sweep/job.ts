/**
 * What every sweep job shares: the sweep's dependencies, its summary, the job type,
 * the actor and the per-run limits.
 *
 * @module
 */
import type { ConvergeDeps } from "../panel/converge.ts";
import type { RetryPolicy } from "../orders/retry.ts";
import type { Stripe } from "../stripe/client.ts";
import type { LifecycleConfig } from "../../stripe-webhook/lifecycle.ts";

/** What a sweep needs. */
export interface SweepDeps extends ConvergeDeps {
  /** Stripe: a pending order is never expired without asking it about the session. */
  stripe: Stripe;
  /** Payment grace and retention: recovered events and followed subscriptions use them. */
  lifecycle: LifecycleConfig;
  /** Provisioning's retry policy (its `maxAttempts` is PROVISION_MAX_ATTEMPTS). */
  retry: RetryPolicy;
  /** Wall-clock budget: no new work starts after it. */
  budgetMs: number;
  /** Alert when a region can take fewer of its largest plan than this (default 2). */
  capacityAlertPlans?: number;
  /** Panel requests made so far (for the summary). */
  panelCalls?: () => number;
}

/** Counts `n` (default 1) orders under an outcome of the sweep's summary. */
export type Count = (outcome: string, n?: number) => void;

/** One job of a sweep: runs while `more()` allows, counting what it did. */
export type SweepJobRun = (
  deps: SweepDeps,
  count: Count,
  more: () => boolean,
) => Promise<void>;

/** Who writes on the timeline for the sweep. */
export const ACTOR = "sweep";
/** Orders taken per step and run; the rest waits for the next sweep. */
export const STEP_LIMIT = 200;

/** The sweep's clock (tests pin it). */
export function clock(deps: { now?: () => Date }): Date {
  return deps.now?.() ?? new Date();
}
