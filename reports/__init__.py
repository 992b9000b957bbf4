"""Rendering that is not Telegram-specific: charts (PNG) and exports (XLSX, CSV)."""
