/**
 * What a server on the panel is made of, as a plain function of the plan, the egg,
 * the order and the customer's panel account.
 *
 * @module
 */
import { DomainError } from "../platform/errors.ts";
import {
  type Order,
  type OrderLimits,
  type PanelLimits,
  panelLimitsOf,
} from "../orders/orders.ts";
import type {
  NewServer,
  PanelEgg,
  PanelServer,
  ServerBuild,
} from "./client.ts";

/** The panel side of a plan (`public.plans`) a server is built from. */
export interface PlanBuild {
  id: string;
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

/** The limits and feature limits of a build, from an order's limits. */
function buildOf(
  limits: PanelLimits,
): Pick<NewServer, "limits" | "feature_limits"> {
  return {
    limits: {
      memory: limits.memory,
      swap: limits.swap,
      disk: limits.disk,
      io: limits.io,
      cpu: limits.cpu,
    },
    feature_limits: {
      databases: limits.databases,
      backups: limits.backups,
      allocations: limits.allocations,
    },
  };
}

/** The whole build-change request that gives a server an order's limits. */
export function serverBuild(
  order: OrderLimits,
  allocation: number,
): ServerBuild {
  return { allocation, ...buildOf(panelLimitsOf(order)) };
}

/** The build a panel server shows (what the panel confirmed). */
export function confirmedLimits(server: PanelServer): PanelLimits {
  const features = server.feature_limits;
  return {
    memory: server.limits.memory,
    swap: server.limits.swap,
    disk: server.limits.disk,
    io: server.limits.io,
    cpu: server.limits.cpu,
    databases: features.databases ?? 0,
    backups: features.backups ?? 0,
    allocations: features.allocations ?? 0,
  };
}

/** The create-server request for an order, all but the allocation. */
export function serverSpec(
  plan: PlanBuild,
  egg: PanelEgg,
  order: Pick<Order, "id" | "server_name"> & OrderLimits,
  account: { pteroUserId: number },
): Omit<NewServer, "allocation"> {
  return {
    name: order.server_name,
    user: account.pteroUserId,
    egg: egg.id,
    docker_image: plan.docker_image ?? egg.dockerImage,
    startup: plan.startup ?? egg.startup,
    environment: eggEnvironment(plan, egg),
    // Every limit comes from the order: what was sold (or changed to since), even if
    // the catalogue changed.
    ...buildOf(panelLimitsOf(order)),
    external_id: order.id,
    description: `Order ${order.id}`,
    start_on_completion: true,
  };
}
