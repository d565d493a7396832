//! The register map: one table from which the hardware's CSR decoder, the driver's
//! accessors, `docs/REGISTERS.md` and the C header are generated.
//! (Filled in by the register-map work item.)
