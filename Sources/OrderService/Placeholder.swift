// OrderService module: placeholder until it lands.
