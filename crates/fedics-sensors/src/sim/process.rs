//! The physical process behind each PLC's registers: a tank filled by a pump through an
//! inlet valve and drained by consumer demand.
//!
//! Register map (holding registers, raw u16):
//! * 0: tank level, 0.1 % (0..=1000)
//! * 1: discharge pressure, kPa
//! * 2: temperature, 0.1 °C
//! * 3: outflow, 0.1 %/min of tank volume
//! * 10: high-level setpoint, 0.1 % (engineering range 50 %..95 %)
//! * 11: low-level setpoint, 0.1 % (engineering range 5 %..50 %)
//!
//! Coils: 0 = pump running, 1 = inlet valve open.
//!
//! Control logic (the PLC program): below the low setpoint the pump starts and the valve
//! opens; above the high setpoint the valve closes and the pump stops. The valve is only
//! ever open while the pump runs (interlock `valve ⇒ pump`), unless an attacker forces
//! the outputs.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

pub(crate) struct Process {
    level: f64,
    temperature_base: f64,
    inflow: f64,
    demand: f64,
    demand_period: f64,
    sp_high: f64,
    sp_low: f64,
    pump: bool,
    valve: bool,
    filling: bool,
    pub forced_pump: Option<bool>,
    pub forced_valve: Option<bool>,
    pub forced_sp_high: Option<f64>,
    t: f64,
}

impl Process {
    pub fn new(rng: &mut ChaCha8Rng, site: usize) -> Self {
        // Facilities run different plants: fill rates, demand and setpoints differ.
        let inflow = [0.55, 0.8, 0.4][site % 3] * rng.random_range(0.9..1.1);
        Self {
            level: rng.random_range(30.0..70.0),
            temperature_base: [21.0, 35.0, 12.0][site % 3] + rng.random_range(-1.0..1.0),
            inflow,
            demand: inflow * rng.random_range(0.4..0.6),
            demand_period: rng.random_range(600.0..1200.0),
            sp_high: [80.0, 85.0, 75.0][site % 3],
            sp_low: [20.0, 30.0, 25.0][site % 3],
            pump: false,
            valve: false,
            filling: rng.random_bool(0.5),
            forced_pump: None,
            forced_valve: None,
            forced_sp_high: None,
            t: 0.0,
        }
    }

    pub fn clear_forcing(&mut self) {
        self.forced_pump = None;
        self.forced_valve = None;
        self.forced_sp_high = None;
    }

    /// Advances the process by `dt` seconds at simulated time `t`.
    pub fn step(&mut self, _rng: &mut ChaCha8Rng, t: f64, dt: f64) {
        self.t = t;
        if self.level < self.sp_low {
            self.filling = true;
        } else if self.level > self.forced_sp_high.unwrap_or(self.sp_high) {
            self.filling = false;
        }
        self.pump = self.forced_pump.unwrap_or(self.filling);
        self.valve = self.forced_valve.unwrap_or(self.filling && self.pump);
        let demand = self.outflow();
        let mut dl = -demand * dt;
        if self.pump && self.valve {
            dl += self.inflow * dt;
        } else if self.valve && !self.pump {
            // Valve open with the pump stopped: the tank drains back through the pump.
            dl -= 0.5 * self.inflow * dt;
        }
        self.level = (self.level + dl).clamp(0.0, 100.0);
    }

    fn outflow(&self) -> f64 {
        let phase = (self.t / self.demand_period) * std::f64::consts::TAU;
        (self.demand * (1.0 + 0.3 * phase.sin())).max(0.0) * (self.level / 100.0).sqrt()
    }

    /// Holding registers 0..4 as the PLC reports them (with sensor noise).
    pub fn registers(&self, rng: &mut ChaCha8Rng) -> [u16; 4] {
        let noise = |rng: &mut ChaCha8Rng, sd: f64| {
            Normal::new(0.0, sd).map(|n| n.sample(rng)).unwrap_or(0.0)
        };
        let level = (self.level + noise(rng, 0.15)).clamp(0.0, 100.0);
        let pressure = if self.pump {
            300.0 + 0.5 * self.level
        } else {
            100.0 + 0.3 * self.level
        } + noise(rng, 2.0);
        let temp = self.temperature_base
            + 2.0 * (self.t / 3600.0 * std::f64::consts::TAU).sin()
            + noise(rng, 0.1);
        let outflow = self.outflow() * 60.0;
        [
            raw(level * 10.0),
            raw(pressure),
            raw(temp * 10.0),
            raw(outflow * 10.0),
        ]
    }

    pub fn coils(&self) -> (bool, bool) {
        (self.pump, self.valve)
    }

    pub fn sp_high_raw(&self) -> u16 {
        raw(self.forced_sp_high.unwrap_or(self.sp_high) * 10.0)
    }

    pub fn sp_low_raw(&self) -> u16 {
        raw(self.sp_low * 10.0)
    }

    pub fn set_sp_high_raw(&mut self, v: u16) {
        self.sp_high = f64::from(v) / 10.0;
    }

    pub fn set_sp_low_raw(&mut self, v: u16) {
        self.sp_low = f64::from(v) / 10.0;
    }
}

fn raw(v: f64) -> u16 {
    v.round().clamp(0.0, f64::from(u16::MAX)) as u16
}
