#include "mummi/md_bridge/structure.hpp"
