/**
 * Operator alerts: a Discord/Slack-style JSON post to ALERT_WEBHOOK_URL (both `content`
 * and `text` are set, so either accepts it) and a row on the order's timeline. Sending
 * never throws: an alert that cannot be delivered is logged.
 *
 * @module
 */
import type { Sql } from "./db.ts";
import type { Logger } from "./log.ts";
import { recordOrderEvent } from "../orders/orders.ts";
import { scrubSecrets } from "./scrub.ts";

/** What went wrong, for a person. */
export interface Alert {
  title: string;
  message: string;
  orderId?: string;
  eventId?: string;
  fields?: Record<string, string | number | null>;
}

/** Sends alerts somewhere. */
export type Alerter = (alert: Alert) => Promise<void>;

/** An alerter posting to `webhookUrl` (when set) and recording on the order. */
export function createAlerter(
  options: { sql: Sql; log: Logger; webhookUrl?: string },
): Alerter {
  return async (alert) => {
    const log = options.log.child({
      order_id: alert.orderId,
      event_id: alert.eventId,
    });
    log.warn(`Alert: ${alert.title}`, {
      alert: alert.message,
      ...alert.fields,
    });
    if (alert.orderId) {
      try {
        await recordOrderEvent(options.sql, alert.orderId, {
          kind: "alert",
          message: alert.title,
          detail: { message: alert.message, ...alert.fields },
          actor: "alerts",
        });
      } catch (error) {
        log.error("Could not record the alert on the order", { error });
      }
    }
    if (!options.webhookUrl) return;
    const lines = [
      `**${alert.title}**`,
      alert.message,
      ...(alert.orderId ? [`order_id: ${alert.orderId}`] : []),
      ...(alert.eventId ? [`event_id: ${alert.eventId}`] : []),
      ...Object.entries(alert.fields ?? {}).map(([key, value]) =>
        `${key}: ${value}`
      ),
    ];
    try {
      const res = await fetch(options.webhookUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          content: scrubSecrets(lines.join("\n")),
          text: scrubSecrets(lines.join("\n")),
          order_id: alert.orderId ?? null,
          event_id: alert.eventId ?? null,
        }),
        signal: AbortSignal.timeout(5_000),
      });
      await res.body?.cancel();
      if (!res.ok) {
        log.error("Alert webhook refused the alert", { status: res.status });
      }
    } catch (error) {
      log.error("Alert webhook unreachable", { error });
    }
  };
}
