"""Telegram handlers, one module per feature; each exports `build_handlers()`."""
