"""Image and title encoders served by Triton (issue: encoders on Triton).

Empty until the encoder work lands; the package exists so the layout in
DESIGN.md is visible and the toolchain covers it.
"""
