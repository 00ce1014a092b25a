/**
 * Environment of a server's life after payment: payment grace, retention, how often
 * provisioning is retried, how often the local stack sweeps, and the optional client
 * API key that lets the shop see (and restore) whether a server was running.
 *
 * @module
 */
import { z } from "zod";

const seconds = (fallback: number) =>
  z.coerce.number().int().nonnegative().default(fallback);

/** Lifecycle variables, each with its default (3 days grace, 14 days retention). */
export const lifecycleEnv = z.object({
  PAYMENT_GRACE_SECONDS: seconds(259_200),
  RETENTION_SECONDS: seconds(1_209_600),
  PROVISION_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(8),
  /** The sweep alerts once when a region can take fewer of its largest plan than this. */
  CAPACITY_ALERT_PLANS: z.coerce.number().int().min(0).max(1000).default(2),
  SWEEP_INTERVAL_SECONDS: z.coerce.number().int().min(1).default(15),
  /** Wall-clock budget of one sweep run; fits the edge limit (150 s free plan). */
  SWEEP_BUDGET_SECONDS: z.coerce.number().int().min(1).max(380).default(45),
  PTERODACTYL_CLIENT_API_KEY: z.string().regex(
    /^ptlc_\w+$/,
    "must be a ptlc_ client key of a root admin",
  ).optional(),
});

/** The parsed lifecycle configuration. */
export type LifecycleConfig = z.infer<typeof lifecycleEnv>;
