"""fckernel: build, verify and boot Linux guest kernels for Firecracker."""

__version__ = "0.1.0"
