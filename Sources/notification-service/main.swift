import NotificationService

await NotificationServiceCommand.main()
