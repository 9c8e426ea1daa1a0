import { describe, expect, it } from "vitest";
import { strategyLabel, strategyName } from "../src/lib/federation";

describe("strategy labels", () => {
  it("names the strategy with its parameters", () => {
    expect(strategyLabel({ strategy: "fedprox", strategy_params: { mu: 0.01 } })).toBe("FedProx (μ = 0.01)");
    expect(strategyLabel({ strategy: "trimmed-mean", strategy_params: { beta: 0.2 } })).toBe(
      "Trimmed mean (trimmed fraction β = 0.2)",
    );
    expect(strategyLabel({ strategy: "fedavg", strategy_params: {} })).toBe("FedAvg");
    expect(strategyLabel({ strategy: "multi-krum", strategy_params: { m: 3, f: 1 } })).toBe(
      "Multi-Krum (Byzantine sites f = 1, averaged m = 3)",
    );
  });

  it("shows an unknown strategy as the server sent it", () => {
    expect(strategyName("fedsomething")).toBe("fedsomething");
    expect(strategyLabel({ strategy: "fedsomething", strategy_params: { k: 2 } })).toBe("fedsomething (k = 2)");
  });
});
