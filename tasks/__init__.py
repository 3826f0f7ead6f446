"""Task plugins shipped with tdp-harness (each registered under the `tdp.tasks` entry points)."""
