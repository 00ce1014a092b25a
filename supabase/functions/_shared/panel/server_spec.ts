/**
 * What a server on the panel is made of, as a plain function of the plan, the egg,
 * the order and the customer's panel account.
 *
 * @module
 */
import { DomainError } from "../platform/errors.ts";
import type { Order } from "../orders/orders.ts";
import type { NewServer, PanelEgg } from "./client.ts";

/** The panel side of a plan (`public.plans`). */
export interface PlanBuild {
  id: string;
  cpu_percent: number;
  swap_mb: number;
  io_weight: number;
  databases: number;
  backups: number;
  allocations: number;
  ptero_nest_id: number;
  ptero_egg_id: number;
  docker_image: string | null;
  startup: string | null;
  environment: Record<string, string>;
}

/**
 * Every egg variable, from the plan's override or the egg's default: the panel fills
 * no defaults itself. A plan naming a variable the egg lacks is a catalogue error.
 */
export function eggEnvironment(
  plan: Pick<PlanBuild, "id" | "environment">,
  egg: Pick<PanelEgg, "name" | "variables">,
): Record<string, string> {
  const known = new Set(egg.variables.map((v) => v.env_variable));
  const unknown = Object.keys(plan.environment).filter((key) =>
    !known.has(key)
  );
  if (unknown.length > 0) {
    throw new DomainError(
      "invalid",
      "plan_variables_unknown",
      `plan "${plan.id}" sets ${
        unknown.join(", ")
      }, which egg "${egg.name}" does not define`,
    );
  }
  return Object.fromEntries(
    egg.variables.map((v) => [
      v.env_variable,
      plan.environment[v.env_variable] ?? v.default_value ?? "",
    ]),
  );
}

/** The create-server request for an order, all but the allocation. */
export function serverSpec(
  plan: PlanBuild,
  egg: PanelEgg,
  order: Pick<Order, "id" | "server_name" | "memory_mb" | "disk_mb">,
  account: { pteroUserId: number },
): Omit<NewServer, "allocation"> {
  return {
    name: order.server_name,
    user: account.pteroUserId,
    egg: egg.id,
    docker_image: plan.docker_image ?? egg.dockerImage,
    startup: plan.startup ?? egg.startup,
    environment: eggEnvironment(plan, egg),
    // Limits come from the order: what was sold, even if the plan changed since.
    limits: {
      memory: order.memory_mb,
      swap: plan.swap_mb,
      disk: order.disk_mb,
      io: plan.io_weight,
      cpu: plan.cpu_percent,
    },
    feature_limits: {
      databases: plan.databases,
      backups: plan.backups,
      allocations: plan.allocations,
    },
    external_id: order.id,
    description: `Order ${order.id}`,
    start_on_completion: true,
  };
}
