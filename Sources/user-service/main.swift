import UserService

await UserServiceCommand.main()
