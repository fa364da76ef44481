// HTTPServer module: placeholder until it lands.
