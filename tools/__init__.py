"""Developer tools kept out of the wheel: local throwaway services, the demo data generator,
benchmarks."""
