import ArgumentParser
import NotificationService

@main
enum Main {
    static func main() async {
        await NotificationServiceCommand.main()
    }
}
