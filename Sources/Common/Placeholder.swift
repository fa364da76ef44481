// Common module: placeholder until it lands.
