# The gem's entry point (`plugins: [jekyll-blogroto]` in _config.yml): the plugin itself is blogroto.rb,
# the same file `blogroto init` copies into a site's _plugins/.
require_relative "blogroto"
