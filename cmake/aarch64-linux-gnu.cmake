# Cross-compiling for 64-bit Arm Linux with Debian's cross toolchain (crossbuild-essential-arm64)
# and the :arm64 -dev packages of a multiarch apt; binaries (ctest, try_run) run under qemu-user.
# ./run.sh arm64 installs all of it and uses this file:
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# find_package / find_library search <prefix>/lib/aarch64-linux-gnu (the :arm64 packages'
# libraries and CMake configs), not the build machine's <prefix>/lib/x86_64-linux-gnu (but see
# below).
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# The arm64 loader and libraries come from the multiarch libc6:arm64 etc. in
# /usr/lib/aarch64-linux-gnu. (With -L /usr/aarch64-linux-gnu, the cross toolchain's own libc,
# a TBB program hung under qemu 7.2.)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
# xsimd, xtensor and xtensor-blas are header-only, but Debian builds their -dev packages per
# architecture (Multi-Arch: same) on top of the architecture-independent xtl-dev, so their :arm64
# versions cannot be installed next to the build machine's: use the build machine's CMake files.
foreach(pkg xsimd xtensor xtensor-blas)
  set(dir "/usr/lib/${CMAKE_HOST_SYSTEM_PROCESSOR}-linux-gnu/cmake/${pkg}")
  if(NOT DEFINED ${pkg}_DIR AND EXISTS "${dir}")
    set(${pkg}_DIR "${dir}" CACHE PATH "${pkg}'s CMake package (header-only, any architecture)")
  endif()
endforeach()
