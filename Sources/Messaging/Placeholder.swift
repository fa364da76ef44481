// Messaging module: placeholder until it lands.
