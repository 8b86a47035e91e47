"""int16x8 rates of a device (int16 activations, int8 weights): the profile's own, else derived here (pure).

No bundled profile measures 16x8 kernels, so the rates come from which kernels the runtime runs them with:

- TFLite Micro on Arm Cortex-M: CMSIS-NN has s16 kernels for conv, depthwise, fully connected, pooling,
  add/mul and softmax, in plain C, DSP (SMLAD) and MVE variants (CMSIS-NN README, operator table; TFLM's
  cmsis_nn kernels call them for int16 inputs). With the DSP extension the inner loop is the same dual 16-bit
  MAC (SMLAD) as s8's, whose kernels first widen int8 pairs with SXTB16; s16 widens only the int8 weights,
  so a MAC costs about the same: int16x8 = the int8 rate (`CMSIS_NN_S16_PER_S8`). tensorflow/tflite-micro
  issue #2473 (NUCLEO-L4R5ZI, Cortex-M4) reports CMSIS-NN speeding 16x8 CNNs up 3-4x like int8 ones.
  With MVE (Helium) a vector holds half as many int16 lanes: half the int8 rate (`MVE_S16_PER_S8`).
- TFLite Micro elsewhere (ESP-NN on the ESP32-S3, Xtensa HiFi, ARC): the vendor libraries are int8 only and
  int16 falls back to TFLM's reference kernels (tensorflow/tflite-micro PR #2140 routes Xtensa, CEVA and
  ARC int16 depthwise to the reference kernel): the profile's float32 rates, which are TFLM reference
  kernels too (the same scalar loops; int16 accumulates in int64).
- LiteRT: XNNPACK has no int16-activation kernels, so every 16x8 op runs TFLite's built-in reference kernels,
  scalar and single-threaded: MACs (elements) per cycle x the CPU clock. Per-cycle figures measured on the
  host profile's CPU (x86-64 at 2.6 GHz, LiteRT 2.3, 1 thread, one-op models converted whole-model 16x8,
  interleaved with the float32 and int8 models of the same op): conv 3x3 32->32 on 32x32 0.5-1.3
  MAC/cycle over two runs on the shared machine, 1x1 conv 0.85, depthwise 3x3 0.31, dense 1024x1024 1.04,
  max/average pool 0.14-0.20 and MUL 0.12 elements/cycle: 20-50x slower than XNNPACK float32 on conv,
  15-170x slower than int8. Capped at the device's float32 and int8 rates (never faster than XNNPACK).
  ARM cores run scalar code at a similar per-cycle rate; treat these as +-2x estimates.

    >>> cost_model, basis = int16x8_cost_model(load_profile("stm32h743"))     # doctest: +SKIP
    >>> cost_model.macs_per_s["conv"]["int16x8"] == cost_model.macs_per_s["conv"]["int8"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

from dataclasses import replace

CMSIS_NN_S16_PER_S8 = 1.0
MVE_S16_PER_S8 = 0.5
#: LiteRT's reference 16x8 kernels: MACs (conv, depthwise, dense) or elements (pooling, elementwise) per cycle
LITERT_REFERENCE_16X8_PER_CYCLE = {"conv": 0.8, "depthwise": 0.3, "dense": 1.0, "pooling": 0.17, "elementwise": 0.12}


def int16x8_cost_model(profile) -> tuple[object, str]:
    """(the profile's cost model with int16x8 rates in every op class, how they were obtained)."""
    cost_model = profile.cost_model
    tables = (cost_model.macs_per_s, cost_model.ops_per_s)
    if all("int16x8" in rates for table in tables for rates in table.values()):
        return cost_model, f"{profile.name}: the profile's int16x8 rates"
    rate, basis = _derivation(profile)
    macs, ops = ({op_class: {**rates, "int16x8": rates.get("int16x8", rate(op_class, rates))}
                  for op_class, rates in table.items()} for table in tables)
    return replace(cost_model, macs_per_s=macs, ops_per_s=ops), f"{profile.name}: {basis}"


def _derivation(profile):
    """(rate(op class, its rates by precision) -> int16x8 rate, a sentence saying where it comes from)."""
    cpu = profile.cpu
    arch, simd = (cpu.arch or "").lower(), (cpu.simd or "").lower()

    def fallback(rates):
        return rates.get("int8", rates.get("float32", next(iter(rates.values()))))

    if profile.runtime == "tflm" and arch.startswith("cortex-m"):
        factor = MVE_S16_PER_S8 if "mve" in simd or "helium" in simd else CMSIS_NN_S16_PER_S8
        return (lambda _c, rates: factor * fallback(rates),
                f"int16x8 = {factor:g} x the int8 rate (CMSIS-NN s16 kernels; none measured on this device)")
    if profile.runtime == "tflm":
        return (lambda _c, rates: rates.get("float32", fallback(rates)),
                "int16x8 = the float32 rate (TFLM reference kernels: the vendor library is int8-only)")
    hz = float(cpu.clock_mhz) * 1e6

    def reference(op_class, rates):
        derived = LITERT_REFERENCE_16X8_PER_CYCLE.get(op_class, min(LITERT_REFERENCE_16X8_PER_CYCLE.values())) * hz
        return min([derived, *(rates[p] for p in ("float32", "int8") if p in rates)])

    return reference, (f"int16x8 from TFLite's reference kernels (no XNNPACK): MACs per cycle measured on the "
                       f"host x {cpu.clock_mhz:g} MHz, one thread")
