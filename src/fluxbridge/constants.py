"""Physical constants and unit factors, each stated once."""

EARTH_RADIUS_M = 6_371_000.0
"""Mean Earth radius [m] used for every cell area (FORMATS.md section 5)."""

MOLAR_MASS_C = 12.0107
"""Molar mass of carbon [g mol-1], as ONEFlux uses."""

SECONDS_PER_DAY = 86_400.0

UMOL_M2_S_TO_GC_M2_D = 1e-6 * MOLAR_MASS_C * SECONDS_PER_DAY
"""1 µmolCO2 m-2 s-1 in gC m-2 d-1 (= 1.03772448)."""

MOL_M2_S_TO_GC_M2_D = MOLAR_MASS_C * SECONDS_PER_DAY
"""1 molCO2 m-2 s-1 in gC m-2 d-1."""

G_PER_TG = 1e12
G_PER_PG = 1e15

SOLAR_CONSTANT_W_M2 = 1361.0
"""Total solar irradiance [W m-2] for potential shortwave radiation."""

MISSING_FLUXNET = -9999
"""Missing value of FLUXNET / ONEFlux CSV files."""
