"""What every domain app (characters, chat, combat) shares: errors."""
