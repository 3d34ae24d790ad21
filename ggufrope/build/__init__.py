"""llama.cpp builds: spec -> cmake arguments, cached builds, smoke test, doctor."""
