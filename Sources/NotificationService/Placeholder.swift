// NotificationService module: placeholder until it lands.
