import assert from "node:assert/strict";
import { DomainError } from "../platform/errors.ts";
import type { PanelEgg } from "./client.ts";
import { eggEnvironment, type PlanBuild, serverSpec } from "./server_spec.ts";

const EGG: PanelEgg = {
  id: 1,
  name: "Paper",
  dockerImage: "ghcr.io/pterodactyl/yolks:java_21",
  startup: "java -jar {{SERVER_JARFILE}}",
  variables: [
    { env_variable: "MINECRAFT_VERSION", default_value: "latest", rules: "" },
    { env_variable: "SERVER_JARFILE", default_value: "server.jar", rules: "" },
    { env_variable: "EULA", default_value: null, rules: "" },
  ],
};

const PLAN: PlanBuild = {
  id: "mc-java-4gb",
  ptero_nest_id: 1,
  ptero_egg_id: 1,
  docker_image: null,
  startup: null,
  environment: { MINECRAFT_VERSION: "1.21.4" },
};

const ORDER = {
  id: "0b6e4a4e-5a0c-4a43-9d57-2f7b3f0a1c11",
  server_name: "Survival",
  memory_mb: 4096,
  disk_mb: 20_480,
  cpu_percent: 200,
  swap_mb: 512,
  io_weight: 500,
  databases: 2,
  backups: 3,
  allocations: 1,
};

Deno.test("eggEnvironment fills every egg variable: plan override, else egg default, else empty", () => {
  assert.deepEqual(eggEnvironment(PLAN, EGG), {
    MINECRAFT_VERSION: "1.21.4",
    SERVER_JARFILE: "server.jar",
    EULA: "",
  });
});

Deno.test("eggEnvironment refuses a plan variable the egg lacks, naming it", () => {
  assert.throws(
    () =>
      eggEnvironment(
        { id: "broken", environment: { SERVER_JARFILE: "a.jar", NOPE: "1" } },
        EGG,
      ),
    (error: unknown) => {
      assert.ok(error instanceof DomainError);
      assert.equal(error.code, "plan_variables_unknown");
      assert.equal(error.kind, "invalid");
      assert.match(error.message, /plan "broken" sets NOPE/);
      assert.match(error.message, /egg "Paper"/);
      return true;
    },
  );
});

Deno.test("serverSpec builds the create request from plan, egg, order and account", () => {
  assert.deepEqual(serverSpec(PLAN, EGG, ORDER, { pteroUserId: 42 }), {
    name: "Survival",
    user: 42,
    egg: 1,
    docker_image: "ghcr.io/pterodactyl/yolks:java_21",
    startup: "java -jar {{SERVER_JARFILE}}",
    environment: {
      MINECRAFT_VERSION: "1.21.4",
      SERVER_JARFILE: "server.jar",
      EULA: "",
    },
    limits: { memory: 4096, swap: 512, disk: 20_480, io: 500, cpu: 200 },
    feature_limits: { databases: 2, backups: 3, allocations: 1 },
    external_id: ORDER.id,
    description: `Order ${ORDER.id}`,
    start_on_completion: true,
  });
});

Deno.test("serverSpec prefers the plan's image and startup over the egg's", () => {
  const spec = serverSpec(
    { ...PLAN, docker_image: "ghcr.io/custom:1", startup: "./run.sh" },
    EGG,
    ORDER,
    { pteroUserId: 1 },
  );
  assert.equal(spec.docker_image, "ghcr.io/custom:1");
  assert.equal(spec.startup, "./run.sh");
});

Deno.test("serverSpec sizes the server by what the order sold, not the plan today", () => {
  const spec = serverSpec(
    PLAN,
    EGG,
    { ...ORDER, memory_mb: 2048, disk_mb: 10_240 },
    { pteroUserId: 1 },
  );
  assert.equal(spec.limits.memory, 2048);
  assert.equal(spec.limits.disk, 10_240);
});
