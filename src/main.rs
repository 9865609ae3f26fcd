// jemalloc instead of the platform's malloc (decision 0038): the broker allocates and frees
// per message and holds many small per-connection objects, where it measured fewer
// instructions per delivered message and less memory per idle connection.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    topicgate::cli::main()
}
