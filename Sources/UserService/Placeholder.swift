// UserService module: placeholder until it lands.
