"""Local development platform: the pinned toolchain and a throwaway control plane."""
