fn main() -> std::process::ExitCode {
    topicgate::cli::main()
}
