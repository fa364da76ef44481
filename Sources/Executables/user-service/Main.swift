import ArgumentParser
import UserService

@main
enum Main {
    static func main() async {
        await UserServiceCommand.main()
    }
}
