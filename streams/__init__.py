"""The stream: Faust app, topics and thin agents around pure join code."""
