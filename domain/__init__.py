"""What every domain app (characters, chat, combat) shares: errors and text hygiene."""
