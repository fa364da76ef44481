// Storage module: placeholder until it lands.
